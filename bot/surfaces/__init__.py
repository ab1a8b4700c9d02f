"""Ways in: the command line and Discord. Both only translate; the work is in the core."""
