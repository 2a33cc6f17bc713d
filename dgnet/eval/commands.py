"""Sub-commands of ``dgnet`` for this area."""


def add_commands(sub) -> None:
    pass
