"""The agent: the science core and the experiment loop that drives a microscope.

Library code for one decision (`features`, `scalarize`, `models`, `acquisition`,
`decide`), the run itself (`loop`, `states`, `control`, `journal`, `record`), and the
daemon that serves it (`daemon`). Only the CLI imports this package. Names are imported
from their modules (e.g. `from dkl.agent.loop import Experiment`) so that importing the
package does not load TensorFlow.
"""

__all__: list[str] = []
