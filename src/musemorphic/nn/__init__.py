"""Neural-network building blocks (layers only: no training logic, no model assembly)."""
