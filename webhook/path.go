package webhook

// ValidatePath is the path the webhook server serves admission reviews on. The chart's
// ValidatingWebhookConfiguration carries it as the value webhook.path, and the chart test
// checks the two agree.
const ValidatePath = "/validate-networkpolicy"
