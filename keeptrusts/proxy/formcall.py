# -*- test-case-name: tests.test_proxy_forms -*-
"""
A proxied call whose body is a form, a multipart body or text
(L{keeptrusts.proxy.forms}): read by the policies as any call is, and sent
as the form it came as, not as JSON.
"""

from keeptrusts.api.pipeline import Call


class FormCall(Call):
    """
    A L{Call} of a L{Form}'s body: what the policies changed goes out in
    the form's own encoding (its fields quoted, its parts between the same
    boundaries), the rest as it came.

    @param form: the L{Form}; its C{body} is the call's body.
    """

    def __init__(self, form, *args):
        Call.__init__(self, *args)
        self.form = form

    def encodedBody(self):
        # As the form it is, not as JSON.
        payload, contentType = self.form.encoded()
        if contentType is not None:
            self.request.requestHeaders.setRawHeaders(
                b"content-type", [contentType])
        return payload
