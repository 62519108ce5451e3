"""
The built-in policy kinds of keeptrusts.
"""

from keeptrusts.policy.audit import AuditLoggerFactory
from keeptrusts.policy.dlp import DlpFilterFactory

auditLogger = AuditLoggerFactory
dlpFilter = DlpFilterFactory
