"""The admins' designers: the form designer now; the flow designer, rule editor and
report builder share its palette, property panel, live expression check and the
draft → publish dialog."""
