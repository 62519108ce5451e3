"""
The built-in policy kinds of keeptrusts.
"""

from keeptrusts.policy.audit import AuditLoggerFactory
from keeptrusts.policy.datarouting import DataRoutingFactory
from keeptrusts.policy.dlp import DlpFilterFactory
from keeptrusts.policy.injection import PromptInjectionFactory
from keeptrusts.policy.pii import PiiDetectorFactory
from keeptrusts.policy.sanitation import CodeSanitationFactory

auditLogger = AuditLoggerFactory
dlpFilter = DlpFilterFactory
piiDetector = PiiDetectorFactory
promptInjection = PromptInjectionFactory
codeSanitation = CodeSanitationFactory
dataRouting = DataRoutingFactory
