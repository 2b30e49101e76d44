"""Profiles: the model, loading (`extends:`), merging (profile < --vars FILE < --set) and validation.

    profile = load_profile("null-client")
    settings = resolve(profile, vars_file=None, assignments=["myhostname=app1.example.com"])
"""

from hardener.profiles.keys import KEYS, KeySpec
from hardener.profiles.loader import DEFAULT_PROFILE, Profile, builtin_names, load_profile
from hardener.profiles.resolve import Settings, resolve

__all__ = ["DEFAULT_PROFILE", "KEYS", "KeySpec", "Profile", "Settings", "builtin_names",
           "load_profile", "resolve"]
