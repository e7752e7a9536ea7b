"""Leads: the public intake that creates them and (later) the staff API that works them."""
