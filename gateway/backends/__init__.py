"""The store and bus implementations (SQLite, Redis), opened as one by the factory."""
