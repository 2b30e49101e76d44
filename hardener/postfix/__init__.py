"""hardener.postfix: the project's one reader of Postfix main.cf, master.cf, mynetworks and tables.

Every other part (lint, render tests, the MTA daemon, audit) reads Postfix configuration through
these functions, which follow Postfix 3.7's own parsing (checked against postconf in tests/postfix).
"""

from hardener.postfix.maincf import Definition, MainCf, load_main_cf, parse_main_cf, split_list
from hardener.postfix.mastercf import MasterCf, Service, load_master_cf, parse_master_cf
from hardener.postfix.mynetworks import (
    NetworkEntry,
    NetworkProblem,
    mynetworks_problems,
    parse_mynetworks,
)
from hardener.postfix.tables import read_aliases, read_table

__all__ = [
    "Definition", "MainCf", "MasterCf", "NetworkEntry", "NetworkProblem", "Service",
    "load_main_cf", "load_master_cf", "mynetworks_problems", "parse_main_cf", "parse_master_cf",
    "parse_mynetworks", "read_aliases", "read_table", "split_list",
]
