"""The Dragonfly2-style Open API (`/oapi/v1`, `/healthy`, personal access tokens)."""
