"""A local stand-in for Marathon and marathon-lb, used by the tests and the demo."""
