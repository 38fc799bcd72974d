"""Cheap proxies that pre-rank candidate models: a linear probe and LogME on frozen encoder features."""
