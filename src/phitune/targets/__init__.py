"""Where a recipe runs: `local`, `local-pipeline`, `maap` (Azure ML pipeline on your compute) and
`maas` (Azure AI serverless fine-tuning), behind one interface.

`phitune.submit(recipe, target=None, dry_run=False, ml_client=None) -> RunHandle` is the entry point
(phitune.targets.submit). Each target implements `Target` (phitune.targets.base) and is imported
lazily by name, so importing phitune never imports azure-ai-ml (~2 s).
"""
