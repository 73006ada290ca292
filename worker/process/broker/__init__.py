"""kombu's Redis transport as this project runs it: every override of kombu's code lives here
(the channel's guarded delivery, the tracking QoS) beside the broker monitor that keeps the
process's view of Redis. `tests/unit/test_kombu_contract.py` pins the kombu bodies they copy.
"""
