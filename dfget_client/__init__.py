"""dfget: the P2P download client of the supernode and its peer uploader (`dfget server`)."""
