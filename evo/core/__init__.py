"""The pure search core: no Ray, no torch (a test imports every module in a fresh interpreter).

space (choice tables, codecs) -> genome -> variation (DEAP crossover/mutation) -> repair (into the
budget) -> initial (generation 0) -> fronts / selection (constrained NSGA-II) -> indicators
(hypervolume) -> population (ask/tell generations); cost_table prices genomes; trial is the
contract every trial's config, outcome and row follow.
"""

from evo.core.cost_table import make_cost_fn
from evo.core.genome import genome_from_key, genome_key
from evo.core.indicators import hypervolume
from evo.core.initial import initial_genomes, least_pruned_uniforms
from evo.core.population import FINISHED, Candidate, Population, planned_trials
from evo.core.repair import cheapest_genome, repair
from evo.core.selection import pareto_front, ranked_fronts, survive, tournament
from evo.core.space import SearchSpace
from evo.core.trial import Outcome, RunContext, outcome, trial_config, trial_row

__all__ = ["FINISHED", "Candidate", "Outcome", "Population", "RunContext", "SearchSpace", "cheapest_genome",
           "genome_from_key", "genome_key", "hypervolume", "initial_genomes", "least_pruned_uniforms",
           "make_cost_fn", "outcome", "pareto_front", "planned_trials", "ranked_fronts", "repair", "survive",
           "tournament", "trial_config", "trial_row"]
