"""Policy backends behind one protocol (see ``base``)."""
