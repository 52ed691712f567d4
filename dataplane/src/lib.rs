//! dataplane: the kernel edge for policy (apply, diff, drift, lab).
