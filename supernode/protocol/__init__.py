"""The wire contract shared by the supernode and dfget (the only supernode code dfget imports)."""
