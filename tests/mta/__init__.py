"""Tests of hardener.mta."""
