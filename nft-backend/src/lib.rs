//! nft-backend: IR → `nft -f` text (the iptables chain graph as one nftables table).
