"""The research bench's back end: datasets of recordings with references, replay of a
dataset through pipelines over the real Converse path (runs), and the comparison of
runs item by item.

- :mod:`research.manifests`: folder + manifest layouts (TSV/CSV/JSONL, LibriSpeech,
  Common Voice) read into rows;
- :mod:`research.importing`: rows validated, written as dataset items (all or nothing);
- :mod:`research.from_turns`: datasets made from stored turns;
- :mod:`research.datasets`: finding, listing, describing and exporting datasets;
- :mod:`research.runs` and :mod:`research.replay`: runs, and replaying them;
- :mod:`research.compare` (with :mod:`research.compare_runs`, which reads the runs):
  the comparison of runs, as plain data for the CLI and admin;
- :mod:`research.admin_tables`: the one place that reads the admin's tables.

Needs the [research] extra (soundfile, jiwer, tqdm).
"""
