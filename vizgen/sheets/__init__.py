"""Sheets: numbers and tables for the posts that no single widget owns."""
