"""tagmatrix: run a project's tests across a matrix of official Python Docker images."""

__version__ = "0.1.0"
