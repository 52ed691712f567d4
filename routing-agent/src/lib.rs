//! routing-agent: the forwarding half of Brindle.
