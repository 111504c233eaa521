"""The training core: never imports azure."""
