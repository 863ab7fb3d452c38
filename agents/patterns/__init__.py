"""Multi-agent patterns, each built from plain bus messages.

- delegation: :func:`agent_tool` (and ``Agent.as_tool()``) offers an agent to another
  agent's model as a tool;
- handoff: ``Agent(..., handoffs=[...])`` lets the model pass the conversation on
  (:class:`Handoff`);
- group chats: :class:`RoundRobinGroupChat` and :class:`SelectorGroupChat` (a function or
  an :class:`LLMSelector` picks the speaker) on ``chat.<name>.inbox``, run with
  :func:`run_group_chat`, stopped by :class:`TerminationCondition`\\ s that compose with
  ``&`` and ``|``;
- supervisor/worker: a :class:`Supervisor` splits a task, fans it out to a pool of
  workers and combines the results.
"""

from ..task import HandoffFailed, HandoffLimitExceeded
from .delegation import agent_tool, answer_text
from .errors import GroupChatError, GroupChatTimeout, SpeakerSelectionError
from .group_chat import ChatRun, GroupChat, RoundRobinGroupChat, run_group_chat
from .handoff import Handoff
from .messages import (
    GroupChatResult,
    GroupChatTask,
    Utterance,
    chat_inbox_topic,
    chat_messages_topic,
)
from .selector import LLMSelector, SelectorFunction, SelectorGroupChat, speaker_named
from .supervisor import CombineFunction, Plan, PlanFunction, SubtaskResult, Supervisor
from .termination import (
    AllOf,
    AnyOf,
    ChatState,
    CostBudget,
    Deadline,
    FunctionCondition,
    MaxMessages,
    TerminationCondition,
    TextMention,
    TokenBudget,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "ChatRun",
    "ChatState",
    "CombineFunction",
    "CostBudget",
    "Deadline",
    "FunctionCondition",
    "GroupChat",
    "GroupChatError",
    "GroupChatResult",
    "GroupChatTask",
    "GroupChatTimeout",
    "Handoff",
    "HandoffFailed",
    "HandoffLimitExceeded",
    "LLMSelector",
    "MaxMessages",
    "Plan",
    "PlanFunction",
    "RoundRobinGroupChat",
    "SelectorFunction",
    "SelectorGroupChat",
    "SpeakerSelectionError",
    "SubtaskResult",
    "Supervisor",
    "TerminationCondition",
    "TextMention",
    "TokenBudget",
    "Utterance",
    "agent_tool",
    "answer_text",
    "chat_inbox_topic",
    "chat_messages_topic",
    "run_group_chat",
    "speaker_named",
]
