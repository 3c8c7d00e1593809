"""Security and governance: identity (users, departments, roles), passwords, the audit log.

Sign-in, sessions, tokens and authorization build on these in the security issue's
later steps.
"""
