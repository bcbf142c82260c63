"""Throwaway local servers (PostgreSQL, NATS, Redis, LiveKit, HAProxy) in temporary
folders on free loopback ports: for the tests, the benchmarks and `voxgate cluster`."""
