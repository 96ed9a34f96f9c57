"""Test helpers shared by several test files (tests import these, never each other)."""
