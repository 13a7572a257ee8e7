"""The widened code-task space (``code.py``): more names, argument names, constants and families.

Version-1 values come first; ``code._FAMILIES`` holds the 18 version-1 families, ``NEW_FAMILIES``
follows them with the same fields (names, arg-name variants, input kind, description, body, buggy
body, uses K).
"""

from __future__ import annotations

MORE_NAMES = [  # two more names for each version-1 family, in its order
    ["sum_two", "add_two"],
    ["sub", "subtract_two"],
    ["mul", "multiply_two"],
    ["absolute_difference", "dist"],
    ["maximum", "max2"],
    ["add_const_{k}", "inc_{k}"],
    ["mul_{k}", "times_by_{k}"],
    ["modulo_{k}", "mod_by_{k}"],
    ["divides_by_{k}", "is_multiple_of_{k}"],
    ["even_check", "is_even_number"],
    ["square_it", "power_two"],
    ["list_max", "max_value"],
    ["sum_of_list", "add_all"],
    ["count_over_{k}", "above_{k}_count"],
    ["reverse_text", "flip"],
    ["vowel_count", "count_aeiou"],
    ["repeat_{k}x", "copies_{k}"],
    ["first_character", "head_char"],
]
MORE_ARGS = {  # input kind -> more arg-name variants
    "ii": [("p", "q"), ("u", "w"), ("first", "second")],
    "i": [("num",), ("number",), ("val",)],
    "l": [("numbers",), ("items",), ("arr",)],
    "s": [("string",), ("w",), ("phrase",)],
}
NEW_FAMILIES = [
    (
        ["min_of_two", "smaller", "minimum", "lesser", "min2"],
        "ii",
        "returns the smaller of {0} and {1}",
        "min({0}, {1})",
        "max({0}, {1})",
        False,
    ),
    (
        ["cube", "cubed", "third_power", "cube_it", "pow3"],
        "i",
        "returns {0} cubed",
        "{0} ** 3",
        "{0} * 3",
        False,
    ),
    (
        ["negate", "negative", "flip_sign", "opposite", "neg"],
        "i",
        "returns {0} with its sign flipped",
        "-{0}",
        "{0}",
        False,
    ),
    (
        ["is_odd", "odd", "check_odd", "odd_check", "is_odd_number"],
        "i",
        "returns True if {0} is odd, else False",
        "{0} % 2 == 1",
        "{0} % 2 == 0",
        False,
    ),
    (
        ["min_of_list", "smallest", "list_min", "min_value", "lowest"],
        "l",
        "returns the smallest number in the list {0}",
        "min({0})",
        "max({0})",
        False,
    ),
    (
        ["list_length", "count_items", "size", "length", "num_items"],
        "l",
        "returns how many numbers are in the list {0}",
        "len({0})",
        "len({0}) - 1",
        False,
    ),
    (
        ["to_upper", "shout", "upper", "uppercase", "caps"],
        "s",
        "returns {0} in upper case",
        "{0}.upper()",
        "{0}",
        False,
    ),
    (
        ["last_char", "last_letter", "final_char", "ending", "tail_char"],
        "s",
        "returns the last character of {0}",
        "{0}[-1]",
        "{0}[0]",
        False,
    ),
    (
        ["subtract_{k}", "minus_{k}", "decrement_by_{k}", "take_away_{k}", "less_{k}"],
        "i",
        "returns {0} minus {k}",
        "{0} - {k}",
        "{0} - {k1}",
        True,
    ),
    (
        ["floor_div_{k}", "int_div_{k}", "divide_by_{k}", "quotient_{k}", "whole_div_{k}"],
        "i",
        "returns {0} divided by {k}, rounded down to an integer",
        "{0} // {k}",
        "{0} % {k}",
        True,
    ),
]
WIDE_KS = range(2, 100)  # constants of the arithmetic K-families in the widened space
REPEAT_KS = range(2, 21)  # repeat_{k} keeps version 1's constants (its tests stay short)
