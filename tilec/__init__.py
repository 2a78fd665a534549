"""tilec"""
