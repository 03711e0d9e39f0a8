"""Tests of how polku dev is assembled."""
