//! iptables-backend: IR → iptables-restore / ipset restore text.
