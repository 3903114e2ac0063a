"""`tf.app`: command-line flags and `run(main)`, for TF1 scripts that use them."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class _FlagValues:
    """Holds defined flags; parses sys.argv the first time a flag is read."""

    def __init__(self) -> None:
        object.__setattr__(self, "_defs", {})
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_parsed", False)

    def _define(self, name: str, default: Any, help: str, kind: Callable[[str], Any],
                choices: list[str] | None = None) -> None:
        self._defs[name] = (default, help, kind, choices)
        self._values[name] = default

    def _parse(self, argv: list[str] | None = None) -> list[str]:
        parser = argparse.ArgumentParser(allow_abbrev=False)
        for name, (default, help_text, kind, choices) in self._defs.items():
            if kind is _parse_bool:
                parser.add_argument(f"--{name}", action="store_true", default=default, help=help_text)
                parser.add_argument(f"--no{name}", dest=name, action="store_false")
            else:
                parser.add_argument(f"--{name}", default=default, type=kind, choices=choices, help=help_text)
        args = sys.argv if argv is None else argv
        known, rest = parser.parse_known_args([self._bool_form(a) for a in args[1:]])
        self._values.update(vars(known))
        object.__setattr__(self, "_parsed", True)
        return args[:1] + rest

    def _bool_form(self, arg: str) -> str:
        """'--flag=false' → '--noflag' for boolean flags (absl's spelling)."""
        name, eq, value = arg[2:].partition("=")
        if arg.startswith("--") and eq and name in self._defs and self._defs[name][2] is _parse_bool:
            return f"--{name}" if _parse_bool(value) else f"--no{name}"
        return arg

    def __call__(self, argv: list[str]) -> list[str]:
        return self._parse(argv)

    def __getattr__(self, name: str) -> Any:
        if name not in self._defs:
            raise AttributeError(name)
        if not self._parsed:
            self._parse()
        return self._values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def flag_values_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _parse_bool(s: Any) -> bool:
    if isinstance(s, bool):
        return s
    low = str(s).lower()
    if low in ("1", "true", "t", "yes", "y"):
        return True
    if low in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {s}")


FLAGS = _FlagValues()


def DEFINE_string(name: str, default: Any, help: str = "") -> None:  # noqa: N802 - TF's name
    FLAGS._define(name, default, help, str)


def DEFINE_integer(name: str, default: Any, help: str = "", lower_bound: Any = None,  # noqa: N802
                   upper_bound: Any = None) -> None:
    FLAGS._define(name, default, help, int)


def DEFINE_float(name: str, default: Any, help: str = "", lower_bound: Any = None,  # noqa: N802
                 upper_bound: Any = None) -> None:
    FLAGS._define(name, default, help, float)


def DEFINE_boolean(name: str, default: Any, help: str = "") -> None:  # noqa: N802
    FLAGS._define(name, default, help, _parse_bool)


DEFINE_bool = DEFINE_boolean


def DEFINE_list(name: str, default: Any, help: str = "") -> None:  # noqa: N802
    FLAGS._define(name, default, help, lambda s: [x for x in s.split(",") if x])


def DEFINE_enum(name: str, default: Any, enum_values: list[str], help: str = "") -> None:  # noqa: N802
    FLAGS._define(name, default, help, str, list(enum_values))


class _Flags:
    """The `tf.app.flags` module object."""

    FLAGS = FLAGS
    DEFINE_string = staticmethod(DEFINE_string)
    DEFINE_integer = staticmethod(DEFINE_integer)
    DEFINE_float = staticmethod(DEFINE_float)
    DEFINE_boolean = staticmethod(DEFINE_boolean)
    DEFINE_bool = staticmethod(DEFINE_boolean)
    DEFINE_list = staticmethod(DEFINE_list)
    DEFINE_enum = staticmethod(DEFINE_enum)


flags = _Flags()


def run(main: Callable[[list[str]], Any] | None = None, argv: list[str] | None = None) -> NoReturn:
    """Parses flags, calls `main(argv)` (or `__main__.main`) and exits with its result."""
    rest = FLAGS._parse(argv)
    if main is None:
        main = sys.modules["__main__"].main
    sys.exit(main(rest))
