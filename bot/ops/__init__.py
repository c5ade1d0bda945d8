"""Operations: set-up, training, process supervision and health checks behind ``python -m bot``."""
