pytest_plugins = ["revo_core.testing.fixtures"]
