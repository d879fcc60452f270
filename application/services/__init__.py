"""Services: the guard, the dictation pipeline and its workers, the daemon, the simulator."""
