"""The pos task, one folder: ``task.py`` declares and registers it (the registry imports it by name);
the other modules hold one role each."""
