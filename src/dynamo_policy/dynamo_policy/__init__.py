"""Imitation policies on frozen DynaMo embeddings, their training and the policy node."""
