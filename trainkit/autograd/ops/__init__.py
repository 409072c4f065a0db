"""The differentiable operations of the engine, grouped by family."""
