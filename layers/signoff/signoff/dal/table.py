"""SignoffTable: the single-table store, one class over the record modules.

Item types (pk / sk):
- ``CONV#<id>`` / ``META``             conversation: status, active turn, backend state
- ``CONV#<id>`` / ``MSG#<time>#<role>`` message shown to the client
- ``CONV#<id>`` / ``TURN#<id>``        turn: status, pause reference, count of calls awaiting a verdict
- ``CONV#<id>`` / ``ACTION#<call id>`` tool call: arguments, digest, approvals, verdict, execution
                                       (also in the audit index, bucket ``CALLS#<tenant>#<month>``)
- ``APPROVAL#<id>`` / ``APPROVAL``     one approver's sign-off on one call (also in the audit index)
- ``CHAT#<id>`` / ``<seq>``            Chat Completions message list (chat_history.py)
- ``EFFECT#<key>`` / ``EFFECT``        side effect of a demo tool, written once per key
- ``BUDGET#<budget>#<group>`` / ``BUDGET`` a budget's reservations in its window, per group
- ``GRANTSCOPE#<hash>`` / ``GRANT#<id>`` a standing approval (also in the audit index, bucket GRANTS)
- ``RECEIPTS#<tenant>`` / ``QUEUED#…`` | ``LOG`` | ``LEAF#<n>`` | ``CHECKPOINT#<n>`` the tenant's receipt
                                       log (receipts.py); ``HEAD`` | ``SEQ#<n>`` its chain-mode receipts
- ``IDEMPOTENCY#...``                  Powertools idempotency records

Every state transition is a conditional write; see docs/architecture.md.
"""

from __future__ import annotations

from signoff.dal.actions import ActionRecords
from signoff.dal.approvals import ApprovalRecords
from signoff.dal.audit import AuditRecords, CallRecords
from signoff.dal.budgets import BudgetRecords
from signoff.dal.conversations import ConversationBusy, ConversationNotFound, ConversationRecords
from signoff.dal.due import DueRecords, DueWork
from signoff.dal.effects import EffectRecords
from signoff.dal.grants import GrantRecords
from signoff.dal.receipts import ReceiptRecords

__all__ = ["ConversationBusy", "ConversationNotFound", "DueWork", "SignoffTable"]


class SignoffTable(
    ConversationRecords,
    ActionRecords,
    ApprovalRecords,
    DueRecords,
    AuditRecords,
    CallRecords,
    EffectRecords,
    BudgetRecords,
    GrantRecords,
    ReceiptRecords,
):
    pass
