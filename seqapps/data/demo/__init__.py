"""Small built-in datasets, one module per task, written for this project.

They let the quickstart and the tests run anywhere, offline, in seconds.
"""
