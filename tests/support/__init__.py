"""Test support: real servers and fakes that speak the real protocols (no mocks of our own code)."""
