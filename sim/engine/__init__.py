"""Simulation engines: `compiled` (Numba) and `des` (SimPy)."""


def limited_resources_refusal(model, engine: str) -> str:
    """Why `engine` cannot run `model`'s limited resources: the message a user sees."""
    names = ", ".join(f"{name} (capacity {c})" for name, c in model.limited_resources.items())
    return (f"the {engine} engine cannot simulate limited resources ({names}): patients wait for each other; "
            "use --engine des (or auto, which picks des for such scenarios)")
