"""The Kedro / MLflow application shell: hooks, config loader, preflight, run guard, tracking,
console and the Kedro datasets. Nothing in the library imports this package."""
