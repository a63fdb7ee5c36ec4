# Snakemake adapter: write the simulated raw night named in the configuration.

from aifa_steps.core.jobserver import delegate

delegate()  # with a job server the script runs there, imports done

from aifa_steps.core.runlog import log_to_file
from aifa_steps.simulate import get_preset, simulate_night

log = log_to_file(snakemake.log[0])
p = snakemake.params
preset = get_preset(p.preset, p.transit_frames)
out = simulate_night(
    snakemake.output[0], preset, seed=p.seed, jobs=snakemake.threads, work_dir=p.work_dir
)
log.info("simulated night %r (seed %s) in %s", preset.name, p.seed, out)
