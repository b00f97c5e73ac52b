"""Local stand-ins for the production control plane, all real servers: a standalone Spark cluster, PostgreSQL.

They start on loopback ports and stop by PID; tests, benchmarks and a developer's laptop use them the same way.
"""
