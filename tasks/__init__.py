"""One module per task. Each declares a Task subclass and registers it by name."""
