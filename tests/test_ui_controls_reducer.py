"""Controls reducer: the one-line message under the buttons says what is happening now."""
from __future__ import annotations

from workbench.records.events import Event
from workbench.ui.state import RunState


def test_a_step_message_goes_when_the_next_step_starts():
    """A 'no proposal' of step 1 stayed under the buttons for the whole run, right above 'run completed',
    as if it were the run's last word; the parameter list keeps why, the message line is for now."""
    st = RunState()
    st.apply(Event("no_proposal", {"parameter": "fallback.instruction", "source": "feedback",
                                   "reason": "no feedback this step: no node using it ran on the back-propagated "
                                             "samples (q2, q6)", "reply": ""}, step=1))
    assert st.run.message.startswith("step 1: no proposal for fallback.instruction")
    st.apply(Event("step_started", {"epoch": 0, "batch": ["q1"]}, step=1))  # the same step: still true
    assert st.run.message.startswith("step 1: ")
    st.apply(Event("step_started", {"epoch": 0, "batch": ["q3"]}, step=2))
    assert st.run.message == ""
    st.run.say("export failed: OSError: disk full")  # a control's message is not a step's
    st.apply(Event("step_started", {"epoch": 0, "batch": ["q4"]}, step=3))
    assert st.run.message == "export failed: OSError: disk full"
