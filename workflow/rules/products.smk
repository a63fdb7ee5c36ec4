# Science products: the calibrated catalogue and colour-magnitude diagram of each cluster.


rule cluster_products:
    input:
        magnitudes=WORK / "photometry" / "{object}" / "magnitudes.ecsv",
        isochrone=lambda wc: config["targets"][wc.object].get("isochrone", []),
    output:
        catalogue=WORK / "products" / "{object}" / "catalogue.ecsv",
        figure=report(
            WORK / "products" / "{object}" / "cmd.png",
            caption="../report/cmd.rst",
            category="5. Science products",
            labels={"figure": "colour-magnitude diagram of {object}"},
        ),
    log:
        LOGS / "cluster_products" / "{object}.log",
    conda:
        "../../environment.yml"
    params:
        target=lambda wc: config["targets"][wc.object],
    script:
        "../scripts/cluster_products.py"
