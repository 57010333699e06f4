"""Pure decisions of the supernode: registries, piece progress, scheduling. No I/O, no clock."""
