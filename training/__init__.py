"""Records of the runs that trained the shipped models (see README.md here); run from the repository root:

    python -m training.classifier_check assets/default
"""
