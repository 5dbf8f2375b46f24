"""Executing the notebooks: ``python -m lc_utils.run`` runs them all with papermill and writes
a report (``runner``), with parameters checked before anything runs (``parameters``) and the
report rendered from what each notebook recorded (``report``).

Nothing here imports the method (torch, the models), so the runner still runs, and reports,
while a module of the library is broken.
"""
